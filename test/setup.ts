// Ink prints only the last frame when CI is set (even empty): tests read every frame, so drop it before Ink loads.
delete process.env.CI;
