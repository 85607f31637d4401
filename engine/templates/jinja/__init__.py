"""Jinja chat templates: turning messages into the prompt text a model was trained on.

A GGUF's ``tokenizer.chat_template`` is Jinja2 written by whoever uploaded the
file, so it is rendered as untrusted code: in jinja2's immutable sandbox (no
attribute escapes, no mutation of our data) and on a budget, because a sandbox
alone lets a template loop for ever or build a string of gigabytes.

The budget is checked at every place a template can spend time or memory:
each loop iteration, call (functions, methods, macros), filter, slice,
``+ * % **``, ``~``, list/dict literal and output. Operations whose result size can be
predicted (``'a' * 10**9``, ``'x'.ljust(n)``, ``|indent(n)``, ``'%999999999d'``)
are refused before they run; every value a template builds is measured, with
shared parts counted each time they would be printed, so that nesting cannot
multiply it past the limit either. Everything else is charged to a render-wide
total. A refusal is a :class:`TemplateError` with a one-line message; template
text quoted in a message is escaped, since it ends up on a terminal.

Templates compile lazily, on the first render, and the result (or the reason
it failed) is cached: a broken template never stops a model from running raw.
The environment matches Hugging Face's ``apply_chat_template`` (and
llama-cpp-python's ``Jinja2ChatFormatter``): ``trim_blocks``/``lstrip_blocks``,
``{% break %}``/``{% continue %}``, ``{% generation %}``, ``raise_exception``,
``strftime_now`` and a ``tojson`` that keeps non-ASCII text and key order.

One module per job: :mod:`.render` (:func:`~engine.templates.jinja.render.render_chat`, the way
in), :mod:`.sandbox` (the environment and its compile cache), :mod:`.budget` (what a render may
spend, and the sizes predicted before an operation runs), :mod:`.filters` (the filters and
globals templates use, metered) and :mod:`.quote` (template text in an error message).
"""
