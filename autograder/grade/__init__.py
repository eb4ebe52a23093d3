"""Grading: run submissions in isolated child processes (see sandbox/)."""
