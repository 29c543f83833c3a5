"""Rooms: the directory of public and private rooms and who may see them."""
