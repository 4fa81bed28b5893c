"""Product feeds: a shop's catalogue (CSV, JSON Lines) of image URLs indexed as products."""
