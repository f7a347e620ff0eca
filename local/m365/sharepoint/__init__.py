"""SharePoint Online as the emulator serves it: REST routes, state, errors and notification delivery."""
