"""The app node: the app factory, the HTTP API, the web client, and the server process."""
