"""daaas vm_images package."""
