// todae agent: the secretary's services and the tools each adds. `todae agent` and `todae mcp serve`
// build one ToolRegistry from these; each service adds its tools only when it is configured.
//
// Tool names are fixed here so the runtime, the MCP server, the synthetic training dialogues
// (`todae data synth secretary`) and the tests agree:
//   calendar (calendar_tools.cpp): calendar_list_events, calendar_create_event, calendar_move_event,
//     calendar_delete_event, calendar_find_free_slots, calendar_check_conflicts, resolve_time
//   mail (mail_tools.cpp): mail_search, mail_read, mail_thread, mail_draft_reply, mail_send, mail_delete
//   data (data_tools.cpp): data_list_files, data_load, data_describe, data_sql, data_stats, data_chart
#pragma once

#include <string>

#include "agent/tool.h"

namespace todae::agent {

struct SecretaryOptions {
  // Calendar: a CalDAV calendar collection URL (http://127.0.0.1:5232/user/calendar/).
  std::string calendar_url, calendar_user, calendar_password;
  std::string timezone = "Asia/Seoul";  // IANA name; times without an offset are in it
  // Mail: imap://HOST:PORT/ or imaps://..., smtp://HOST:PORT or smtps://...
  std::string imap_url, smtp_url, mail_user, mail_password, mail_from;
  // Data analysis: the only folder its tools read and write.
  std::string data_dir;
  // "Now" for tests and reproducible runs (ISO 8601 with offset); empty: the clock.
  std::string now;
};

void add_calendar_tools(ToolRegistry& reg, const SecretaryOptions& opt);  // needs calendar_url
void add_mail_tools(ToolRegistry& reg, const SecretaryOptions& opt);      // needs imap_url and/or smtp_url
void add_data_tools(ToolRegistry& reg, const SecretaryOptions& opt);      // needs data_dir
// Every service that `opt` configures (resolve_time needs none and is always there).
void add_secretary_tools(ToolRegistry& reg, const SecretaryOptions& opt);

}  // namespace todae::agent
