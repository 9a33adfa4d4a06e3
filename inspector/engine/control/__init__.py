"""Control: where a pass stops (breakpoints) and who steps it (the stepper, the headless
Debugger, sessions over a training loop, a script run)."""
