"""``inferlab tune``: a measured search for the best configuration under SLOs and an accuracy floor.

space.py (the study file) -> prune.py (what cannot run, with reasons) -> study.py (Optuna asks,
trial.py measures each proposal as a lab case in its own pytest process, trial_suite.py) ->
answer.py (front, pick, confirmation, reproduction) -> report.html (report.py) and tune.json.
"""
