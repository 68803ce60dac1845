// todae train: the small pieces both training loops (`todae pretrain`, trainer.cpp, and
// `todae finetune`, finetune.cpp) use around the optimizer: a stop flag set by SIGINT/SIGTERM, a
// monotonic clock, durations for ETAs, and publishing a checkpoint's file into the run folder.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "train/train.h"

namespace todae {

// SIGINT and SIGTERM set a flag instead of killing the process, so the loop can save a checkpoint
// at the end of the current step and exit 0.
void install_stop_signal_handlers();
bool stop_requested();

double now_s();                    // steady clock, seconds
std::string fmt_duration(double s);  // "42s", "3m07s", "2h05m"; "?" for negative or absurd values

// RUN/NAME -> a hard link to the checkpoint's file (free, and atomic through rename), falling back
// to a copy where links are not possible, so RUN is itself a Hugging Face model folder.
void publish_file(const std::string& src, const std::string& dst);

// Calls the evaluation hook. Its error is a warning on stderr, not the end of the run (hours of
// training outweigh one evaluation); returns the fields for the row (an object, empty then).
nlohmann::json run_eval_hook(const EvalHook& hook, const EvalHookArgs& args);
// One line of the hook's scores for the log: "arithmetic/exact_match 0.0300±0.0121 ..." from
// "eval/TASK/METRIC" and "..._stderr" fields (other fields as KEY VALUE).
std::string eval_summary(const nlohmann::json& fields);

}  // namespace todae
