"""The model layer: latents, networks, objectives, student, hand-over, inference.

method.md sections 2-5 and 8. Never imports tf_lifelong.data, lifelong or cli.
The hand-over is `tf_lifelong.model.handover.handover` (the module keeps the
name `handover` here; the function is not re-exported over it).

Import the modules (`from tf_lifelong.model import student`): the package re-exports
nothing, so importing one module does not import the others (nor need them under Bazel).
"""
