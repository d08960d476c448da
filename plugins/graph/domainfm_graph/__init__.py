"""GCC (Graph Contrastive Coding) on torch-geometric: data, GIN encoder, InfoNCE, evaluation."""

__version__ = "0.1.0"
