// What can be told about a libvirt managed-save image without loading it:
// whether libvirt finished writing it, and whether QEMU wrote it with
// x-ignore-shared on. Lets `vmupdate restore` recover a save that was
// interrupted before vmupdate recorded its checksum. Private header.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/manifest.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vmupdate {

/// The facts read from a managed-save image.
struct SaveImageFacts {
    std::uint64_t size{}; ///< bytes
    bool complete{};      ///< libvirt's magic says "LibvirtQemudSave", not "...Part"
    bool compressed{};    ///< save_image_format is not raw: the stream cannot be read
    /// Whether QEMU's configuration section lists x-ignore-shared; nullopt when
    /// the stream could not be read (compressed, or no QEMU stream found).
    std::optional<bool> ignore_shared;
};

/// Reads the header of a managed-save image (at most a few MiB, never through a
/// symbolic link); Errc::not_found when it does not exist, Errc::verify when it
/// is not a libvirt QEMU save image.
[[nodiscard]] Result<SaveImageFacts> read_save_image(const std::string& path);

/// The SHA-256 of a managed-save image, read through one descriptor opened as
/// read_save_image does and bounded by its size at open; `sync` flushes it first.
[[nodiscard]] Result<std::string> image_sha256(const std::string& path, bool sync);

/// The same, for image bytes already in memory (the first bytes of the file) and
/// the file's size; for tests and the fuzzer.
[[nodiscard]] Result<SaveImageFacts> parse_save_image(std::string_view head, std::uint64_t size,
                                                      const std::string& object);

/// A managed-save image found fit for restoring a vmupdate save.
struct ImageCheck {
    std::uint64_t size{};
    std::string sha256;
    std::string unverified; ///< what could not be verified, for the log and the operator
};

/// Checks that the manifest's image is the one vmupdate's save left: the recorded
/// size, then checksum; for a save interrupted before those were recorded (state
/// saving), that libvirt completed the image and QEMU wrote it with x-ignore-shared.
/// Errc::verify names what does not match.
[[nodiscard]] Result<ImageCheck> check_image_for_restore(const Manifest& m);

} // namespace vmupdate
