// todae base: JSON parsing for text that may be anything (request bodies, model output, lines of a
// log after a crash).
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace todae {

// A discarded value (is_discarded()) for every malformed text. nlohmann's own
// parse(..., allow_exceptions = false) still throws out_of_range.406 for a number that overflows a
// double ("1e999"); found by fuzz_api_request.
template <class Json = nlohmann::json>
Json parse_json_or_discarded(std::string_view text) {
  try {
    return Json::parse(text.begin(), text.end(), nullptr, false);
  } catch (const typename Json::exception&) {
    return Json(Json::value_t::discarded);
  }
}

}  // namespace todae
