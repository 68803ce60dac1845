#!/usr/bin/env bash
# Tool-calling tasks end to end: a tiny model is pretrained here, then fully fine-tuned until it
# has learnt four chats (three tool calls and one plain answer, in TRL's tool-call format); `todae
# eval` renders the same chats with the model's chat template and tools, generates, parses the
# calls and scores them with BFCL's AST check: all four must be right (the model before the
# fine-tune gets only the plain answer right). Then the built-in tool_calls_ko task runs, and the
# errors of a tool task are one line.
set -uo pipefail
todae=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/../check_lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3

"$todae" tokenizer train --input "$root"/data/ko/*.txt --vocab-size 1024 --output "$tmp/tok" --quiet >/dev/null 2>&1
"$todae" data shard --tokenizer "$tmp/tok" --input "$root"/data/ko/*.txt --output "$tmp/shards" >/dev/null 2>&1
# The tiny preset's shape with room for a chat with tools (1024 positions: the prompt alone is ~440 tokens).
cat > "$tmp/cfg.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 192,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 16, "vocab_size": 1024,
 "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}
EOF
"$todae" pretrain --model "$tmp/cfg.json" --data "$tmp/shards" --out "$tmp/run" --steps 30 --threads 2 --no-plot >/dev/null 2>&1
check "pretrained" 0 "" test -f "$tmp/run/model.safetensors"

# The same chats as a task (BFCL possible answers) and as fine-tuning examples (the first answer).
$py - "$tmp" <<'EOF'
import json, sys
d = sys.argv[1]
def tool(name, props, req):
    return {"type": "function", "function": {"name": name, "description": name + " 계산",
            "parameters": {"type": "object", "properties": {p: {"type": t} for p, t in props}, "required": req}}}
tools = [tool("add", [("a", "integer"), ("b", "integer")], ["a", "b"]),
         tool("set_reminder", [("message", "string"), ("time", "string")], ["message", "time"])]
docs = [("3 더하기 4는?", [{"add": {"a": [3], "b": [4]}}], {"add": {"a": 3, "b": 4}}),
        ("오후 5시에 회의 알림", [{"set_reminder": {"message": ["회의"], "time": ["17:00", "17:00:00"]}}],
         {"set_reminder": {"message": "회의", "time": "17:00"}}),
        ("12 더하기 30은?", [{"add": {"a": [12], "b": [30]}}], {"add": {"a": 12, "b": 30}}),
        ("안녕하세요", [], None)]
with open(d + "/tools_eval.jsonl", "w") as f, open(d + "/tools_sft.jsonl", "w") as g:
    for q, gt, call in docs:
        msgs = [{"role": "user", "content": q}]
        f.write(json.dumps({"messages": msgs, "tools": tools, "ground_truth": gt}, ensure_ascii=False) + "\n")
        if call:
            (n, a), = call.items()
            ans = {"role": "assistant", "content": "",
                   "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}}]}
        else:
            ans = {"role": "assistant", "content": "안녕하세요! 무엇을 도와드릴까요?"}
        g.write(json.dumps({"tools": tools, "messages": msgs + [ans]}, ensure_ascii=False) + "\n")
EOF
cat > "$tmp/tools.yaml" <<'EOF'
task: tools_tiny
output_type: tool_call
dataset_kwargs:
  data_files:
    test: tools_eval.jsonl
test_split: test
generation_kwargs:
  max_gen_toks: 96
EOF

metric() {  # results.json, metric -> value
  $py -c "import json,sys; print(json.load(open(sys.argv[1]))['results']['tools_tiny']['metrics'][sys.argv[2]]['value'])" "$@"
}
check "eval before fine-tuning" 0 "tool_call_acc" "$todae" eval --model "$tmp/run" --tasks "$tmp/tools.yaml" --out "$tmp/before" -q
same "before: only the plain answer is right" "0.25" "$(metric "$tmp/before/results.json" tool_call_acc)"

"$todae" finetune --model "$tmp/run" --data "$tmp/tools_sft.jsonl" --out "$tmp/ft" --method full --epochs 300 --lr 1e-2 \
  --max-length 1024 --threads 2 >/dev/null 2>&1
check "fine-tuned" 0 "" test -f "$tmp/ft/model.safetensors"
check "eval after fine-tuning" 0 "tool_name_acc" "$todae" eval --model "$tmp/ft" --tasks "$tmp/tools.yaml" --out "$tmp/after" -q
same "after: tool_call_acc" "1.0" "$(metric "$tmp/after/results.json" tool_call_acc)"
same "after: tool_name_acc" "1.0" "$(metric "$tmp/after/results.json" tool_name_acc)"
s=$(sed -n 2p "$tmp/after/samples_tools_tiny.jsonl")
for k in '"name_ok":true' '"args_ok":true' '"tool_calls":[{"name":"set_reminder","arguments":{"message":"회의","time":"17:00"}}]' \
         '"chat_prompt":"' '<|assistant|>' '"prediction":"<|tool_call|>{\"name\": \"set_reminder\"'; do
  check "sample has $k" 0 "$k" echo "$s"
done
check "plain answer: no call" 0 '"tool_calls":[]' sed -n 4p "$tmp/after/samples_tools_tiny.jsonl"

# The bundled Korean task runs on any model (this one calls nothing sensible: a low score).
check "tool_calls_ko" 0 "tool_call_acc" "$todae" eval --model "$tmp/run" --tasks tool_calls_ko --limit 3 --out "$tmp/ko" -q
check "tool_calls_ko listed" 0 "tool_calls_ko" "$todae" eval --list-tasks
check "tool_calls_ko samples" 0 "" bash -c "[[ \$(wc -l < '$tmp/ko/samples_tool_calls_ko.jsonl') == 3 ]]"

# Errors: one line naming the file (and line, and column).
printf '%s\n' "$(head -1 "$tmp/tools_eval.jsonl" | sed 's/"add": {"a": \[3\]/"sub": {"a": [3]/')" > "$tmp/bad.jsonl"
sed 's/tools_eval.jsonl/bad.jsonl/' "$tmp/tools.yaml" > "$tmp/bad.yaml"
check "unknown function in the answer" fail "bad.jsonl:1: column 'ground_truth'[0]: no function 'sub' among the tools" \
  "$todae" eval --model "$tmp/run" --tasks "$tmp/bad.yaml"
printf 'task: t\noutput_type: tool_call\nmetric_list:\n  - metric: exact_match\n' > "$tmp/badm.yaml"
check "generation metric on a tool task" fail "does not apply to a tool-calling task" "$todae" eval --model "$tmp/run" --tasks "$tmp/badm.yaml"

echo "cli_eval_tools: $pass passed, $fail failed"
[[ $fail == 0 ]]
