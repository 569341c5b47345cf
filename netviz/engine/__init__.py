"""netviz's traversal engine: pure Python, no Django, no I/O."""
