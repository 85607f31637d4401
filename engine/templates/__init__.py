"""Chat templates: a conversation in, the prompt text a model was trained on out.

* :mod:`.message`: :class:`~engine.templates.message.Message`, one turn, the value every renderer takes;
* :mod:`.render`: which template a request uses (``template_for``), built once per text and tokens;
* :mod:`.jinja`: the sandboxed Jinja renderer (GGUF ``tokenizer.chat_template``s);
* :mod:`.go`: Ollama's Go templates, byte for byte as Go and Ollama render them;
* :mod:`.known` and :mod:`.formats`: the built-in formats for base models, as data files.
"""
