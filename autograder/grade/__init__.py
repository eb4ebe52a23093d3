"""Instructor side: grade resnet50_skeleton.py submissions.

probe.py runs in the sandbox beside student code and only observes; everything
else runs in the trusted process: expectations (reference run), scoring and
parts/ (one module per question), outputs (files), batch (the CLI's loop).
"""
