"""Stage 05: fitting and judging the differentiable piano S (lmm_utils/models/synth.py).

S learns the *instrument*, never the music: it is fitted only on random note sequences (random pitches, timings,
velocities, chords, re-strikes and pedal) rendered by FluidSynth with the benchmark pianos, and judged on the test
pool's ground-truth motion against a clean FluidSynth rendering of the same motion.

  random_motion   RandomMotionConfig, random_performance: one random excerpt of motion
  pairs           SynthPairs; rendering random or pool motion to (roll, log-mel) pairs
  fit             TemplateBaseline, FitConfig, calibrate_level, fit_synth (the project's training loop, log-mel L1)
  judge           spectral metrics per excerpt, gradient check, speed
  plots           spectrograms side by side, fitting curves
  stage           the stage's steps, as notebooks/05_synth.ipynb runs them (and run_stage, without a notebook)
"""
