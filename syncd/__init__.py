"""syncd: keeps an Oki-Toki call center and a CRM in agreement."""

__version__ = "0.1.0"
__all__ = ["__version__"]
