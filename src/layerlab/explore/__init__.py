"""``layerlab explore``: a local web app over the user's own runs.

- :mod:`.listing` (torch-free): the runs under the folders given, each under an id the server
  assigns; a run is only ever reached through that id, never through a path from a request.
- :mod:`.views` (torch, imported when a view needs a model): feature maps, the multiply-add behind
  one value (article eq. 3.1.1), filters, the confusion matrix, hidden states, gates and the
  gradient of the loss with respect to each ``h_t`` (eq. 3.2.3).
- :mod:`.server`: the standard library's ``ThreadingHTTPServer``, bound to 127.0.0.1; it serves only
  the files in ``static/`` that ship with the package.
- :mod:`.static_page`: one self-contained HTML file for a run (``--static``).
"""
