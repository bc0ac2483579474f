"""The fleet: inventory files loaded, merged and located, and host selection by ring or name.

Pure: reads files only through a `ProjectSource`; never imports the CLI, pyinfra or paramiko.
"""
