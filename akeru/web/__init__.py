"""People's pages and their HTTP helpers (see README.md); ``akeru.urls`` maps them."""
