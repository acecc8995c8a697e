"""Presentation in one place: the message catalogue (French first, English), Babel formats, the verdict in words.

Every word a user reads (dashboards, reports, exports, the CLI's verdicts) comes from the gettext
catalogues in ``locales/<language>/LC_MESSAGES/parcours.po`` through ``catalogue.py``; every number,
percentage, sum of money and date is formatted by ``formats.py``; the verdict of a study is rendered
by ``verdict.py``. Pages, figures and reports hold layout only.
"""
