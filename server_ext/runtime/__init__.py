"""The runtime: processes that run server notebook code, never the Jupyter server itself.

``template`` loads the notebooks once and forks workers; ``worker`` runs calls;
``loader`` turns notebook cells into code with locatable frames.
"""
