"""Every sentence sent to an LLM, as template files rendered strictly by ``agents.llm.templates``.

``<role>.md`` holds a role's messages (sections ``--- system ---`` and ``--- user ---``; a file
without sections is one user message), ``design_*.md`` and ``none.md`` describe designs inside
them, ``contract.md`` is the design contract the coder follows, and ``knowledge-*.md`` are short
notes on linear-attention design that the researcher reads. The files sit flat in this package so
that they install as its package data.
"""
