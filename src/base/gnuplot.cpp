// Running gnuplot (Debian gnuplot-nox) for the PNG plots of training metrics and eval reports.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include "base/base.h"

extern char** environ;

namespace todae {

int run_gnuplot(const std::string& script, std::string* err) {
  const std::string err_path = script + ".err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  const char* argv[] = {"gnuplot", script.c_str(), nullptr};
  pid_t pid;
  const int rc = posix_spawnp(&pid, "gnuplot", &fa, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *err = cat("cannot run gnuplot: ", std::strerror(rc), " (install gnuplot-nox)");
    ::unlink(err_path.c_str());
    return -1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  *err = file_exists(err_path) ? read_file(err_path) : "";
  ::unlink(err_path.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string gnuplot_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace todae
