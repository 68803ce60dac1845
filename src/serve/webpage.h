// The chat page served at GET / (HTML, CSS and JS in one string, compiled into the binary).
#pragma once
#include <string_view>
namespace todae::serve {
std::string_view chat_page_html();
}
