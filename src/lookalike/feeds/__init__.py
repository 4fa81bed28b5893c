"""Product feeds: catalogues of image URLs (CSV / JSON Lines) fetched and indexed."""
