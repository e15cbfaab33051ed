"""The local stack the demo (scripts/demo.py), the benchmarks (bench/) and the tests share.

Processes on 127.0.0.1 stopped by their PIDs (``procs``), a local AWS seeded like an account Akeru
manages (``localaws``), the fault proxy (``awsproxy``) and the STS proxy (``stsproxy``) in front of
moto_server, and the AWS federation sign-in stand-in (``signin``). Development only: never shipped in
the image, and nothing in ``akeru/`` imports it.
"""
