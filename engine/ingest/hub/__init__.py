"""Everything that talks to Hugging Face, through huggingface_hub, one module per job.

- ``client``: the one gate before huggingface_hub is used (``quiet_hub``): the
  environment it reads at import checked, its logging and warnings routed
  into ``HUB_LOG``, its HTTP client built where a bad proxy can be named.
- ``quoting``: network text fit for a one-line message, with every token hidden.
- ``tokens``: the token sent, cleaned and checked, whoever found it.
- ``errors``: huggingface_hub's and the network's exceptions as one-line
  user errors naming the configured endpoint (``HF_ENDPOINT``); the cancel check.
- ``remote``: what a repository offers, as data (``RemoteFile``,
  ``RemoteVariant``, ``RepoListing``).
- ``listing``: ``fetch_listing``, a repo's GGUF variants pinned to one commit.
- ``header``: ``read_remote_info``, a variant's GGUF header read into memory.
- ``download``: ``download``, one file into a resumable partial, hashed as it arrives.
- ``search``: ``search_models``, GGUF repositories by name.

The engine never prints, and every message that quotes the network is one
line with control characters escaped, never shows the token, and names the
configured endpoint, not huggingface.co. Every public function passes
through ``client.quiet_hub`` first.
"""
