"""xiaoshuo 中文小说写作AI系统: write Chinese novels with a local LLM (vLLM + LoRA + ChromaDB).

Importing the package is cheap: no torch, vllm or chromadb until a feature needs them.
"""

__version__ = "0.1.0"
