"""Stage runner, params checks, display helpers: the code that runs and shows the pipeline, not what it learns."""
import contextlib
import io
import os

# pyfluidsynth (imported by pretty_midi and by the renderer) prints where it found libfluidsynth to stdout when
# $CI is set, as on CI machines: a line in every stage log and in stdout meant to be parsed. Imported here first,
# quietly, the later imports find it loaded. Here and not in lmm_utils.core: the mapping runs' code fingerprint
# covers the training code, and this changes nothing a run learns.
if os.environ.get("CI"):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            import fluidsynth  # noqa: F401  (for the side effect above)
        except (ImportError, OSError):  # no (loadable) libfluidsynth: the renderer says how to install it when needed
            pass
