"""Developer tools that are not part of the PhoneDesk service."""
