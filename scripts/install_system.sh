#!/usr/bin/env bash
# System packages pip cannot install: FluidSynth (library + CLI), the benchmark's soundfonts, and the
# Cairo library used to rasterize engravings. Idempotent: does nothing when everything is present.
set -euo pipefail

PACKAGES="fluidsynth libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont csound-soundfont libcairo2 fonts-dejavu-core"
SOUNDFONTS="/usr/share/sounds/sf2/FluidR3_GM.sf2 /usr/share/sounds/sf2/TimGM6mb.sf2 /usr/share/sounds/sf2/sf_GMbank.sf2"

missing=0
ldconfig -p 2>/dev/null | grep -q libfluidsynth || missing=1
ldconfig -p 2>/dev/null | grep -q 'libcairo.so.2' || missing=1
for sf in $SOUNDFONTS; do [ -f "$sf" ] || missing=1; done
[ "$missing" = 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo"
else
    cat >&2 <<MSG
Missing system packages, and no root or passwordless sudo to install them.
Install them yourself:
    sudo apt-get install $PACKAGES
or use the conda route (no root needed):
    conda env create -f environment.yml && conda activate lmm
    # then put FluidR3_GM.sf2, TimGM6mb.sf2 and sf_GMbank.sf2 in a folder and
    export LMM_SOUNDFONT_PATH=/that/folder
MSG
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "No apt-get on this system: install FluidSynth, Cairo and the soundfonts ($PACKAGES) with your package manager, or use environment.yml (conda)." >&2
    exit 1
fi
echo "Installing system packages: $PACKAGES"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
