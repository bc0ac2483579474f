"""pyinfra deploys that policies call with `deploy:` (`use: module:function`).

Add your own module here: a function decorated with `pyinfra.api.deploy` that calls pyinfra
operations. patchring runs it like any other resource: in a plan, pyinfra's own facts decide
whether its operations would change anything; in an apply, they run with a timeout per step.
"""
