"""Users' SSH public keys: kept on their profile, handed to their VMs by the bootstrap exchange."""
