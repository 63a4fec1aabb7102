"""What PhoneDesk is about, with no I/O: requests and their transitions, UPNs, phone numbers,
progress events and audit actions. Everything may import it; it imports nothing of ours."""
