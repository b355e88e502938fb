"""One module-level router per feature (``llm``, ``anthropic``, ``streams``, ``channels``,
``jobs``, ``files``, ``tails``, ``demo``, ``ops``); each route gets the services it uses through
the ``Annotated`` aliases of ``server/_deps.py`` and raises typed errors that its route class
(``server/_errors.ErrorRoute``) answers in the shape of the API it speaks. ``_generations.py``
holds what every route starting a generation shares (admission, start, waiting in the
request)."""
