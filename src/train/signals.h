// Preemption-friendly signal handling for training:
//   SIGTERM / SIGUSR1 (Slurm preemption): finish the current step, checkpoint, exit 0.
//   SIGINT: first one as SIGTERM; a second one exits at once without saving (exit code 130).
#pragma once

namespace l4::train {

void install_stop_signal_handlers();
bool stop_requested();
// For tests and for `train.stop_at_step`: behave as if a stop signal arrived.
void request_stop();
// Number of the signal that requested the stop, 0 if none (or requested programmatically).
int stop_signal();

}  // namespace l4::train
