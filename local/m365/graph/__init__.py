"""Microsoft Graph as the emulator serves it: OneDrive, Outlook, delta queries, subscriptions,
and their delivery."""
