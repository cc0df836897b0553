"""silnode: share GGUF models peer to peer, discover them, serve and sell inference."""

__version__ = "0.1.0"
__all__ = ["__version__"]
