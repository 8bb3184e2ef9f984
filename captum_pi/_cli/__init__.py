r"""
The parts of the ``captum-pi`` command (:mod:`captum_pi.cli`) that are not its
arguments: reading the texts (:mod:`.texts`), finding and loading the classifier
(:mod:`.sources`) and the JSON Lines file that ``--file`` writes and resumes
(:mod:`.records`). Like :mod:`captum_pi.cli` they import neither torch nor
transformers until a model is loaded.
"""


class UserError(Exception):
    r"""An error the user can act on: reported in one line, exit status 2."""
