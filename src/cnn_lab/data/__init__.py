"""Data: sources (digits, torchvision sets, image folders), splits and transforms."""
