// File system helpers for crash-safe state: atomic replacement, durable
// directories, hashing (fsutil.cpp), and directories opened and created without
// following links (dirs.cpp). Private header.
#pragma once

#include "fd.hpp"
#include "vmupdate/error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace vmupdate {

/// Replaces `path` with `content` so that a crash leaves either the old or the new
/// file, complete: a temporary file in the same directory is written, synced and
/// renamed over `path`, then the directory is synced. The file gets `mode` exactly.
[[nodiscard]] Result<void> write_file_atomic(const std::string& path, std::string_view content,
                                             mode_t mode);

/// Reads a whole file; Errc::not_found when it does not exist, Errc::invalid_input
/// when it is larger than `max` bytes.
[[nodiscard]] Result<std::string> read_file(const std::string& path, std::size_t max);

/// read_file, with nullopt when the file does not exist.
[[nodiscard]] Result<std::optional<std::string>> read_file_if_exists(const std::string& path,
                                                                     std::size_t max);

/// Reads `len` bytes from `fd`'s current offset into `buf`, fewer only at the end
/// of the file; returns how many. A read error is reported as `step` on `object`.
[[nodiscard]] Result<std::size_t> read_full(int fd, char* buf, std::size_t len,
                                            const std::string& object, const std::string& step);

/// Reads the last `max` bytes of a file (all of it when smaller); Errc::not_found
/// when it does not exist.
[[nodiscard]] Result<std::string> read_file_tail(const std::string& path, std::size_t max);

/// Owner and group for make_dir.
struct Owner {
    uid_t uid;
    gid_t gid;
};

/// Creates directory `path` if missing and enforces `mode` (and `owner` when
/// given); Errc::refused when `path` is a symbolic link or not a directory, when
/// it exists owned by someone other than this process's user and `owner`, or
/// when a directory above it is writable by another user.
[[nodiscard]] Result<void> make_dir(const std::string& path, mode_t mode,
                                    std::optional<Owner> owner = std::nullopt);

/// make_dir for entry `name` of the open directory `parent`, returning the new or
/// existing directory open; `shown` names it in errors.
[[nodiscard]] Result<Fd> make_dir_at(int parent, const std::string& name, mode_t mode,
                                     std::optional<Owner> owner, const std::string& shown);

/// Opens directory `path` without following a symbolic link in any component
/// (openat2 RESOLVE_NO_SYMLINKS); Errc::refused for a link, Errc::not_found
/// when missing.
[[nodiscard]] Result<Fd> open_dir_no_links(const std::string& path);

/// Opens directory entry `name` of `parent` without following a link in its
/// place; Errc::refused for a link or a non-directory, Errc::not_found when
/// missing. `shown` names it in errors.
[[nodiscard]] Result<Fd> open_dir_at(int parent, const std::string& name, const std::string& shown);

/// "name (uid N)", or "uid N" for a user without a name, for error messages.
[[nodiscard]] std::string user_text(uid_t uid);

/// Lists the names in an open directory (without "." and ".."); `shown` names
/// it in errors.
[[nodiscard]] Result<std::vector<std::string>> list_dir(int dir, const std::string& shown);

/// Flushes an open file or directory to stable storage.
[[nodiscard]] Result<void> fsync_fd(int fd, const std::string& object);

/// Flushes a file or directory to stable storage.
[[nodiscard]] Result<void> fsync_path(const std::string& path);

/// The lowercase hex SHA-256 of a file's content.
[[nodiscard]] Result<std::string> sha256_file(const std::string& path);

/// The last component of `path` (all of it when it has no '/').
[[nodiscard]] std::string base_name(std::string_view path);

/// The directory part of `path` ("." when it has none), for syncing after a rename.
[[nodiscard]] std::string parent_dir(std::string_view path);

} // namespace vmupdate
