// Reading libvirt managed-save images: complete or partial, and whether QEMU
// wrote them with x-ignore-shared.
#include "fsutil.hpp"
#include "save_image.hpp"
#include "save_image_fixture.hpp"
#include "temp_dir.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace vmupdate;
using vmupdate::testing::save_image;

namespace {

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

} // namespace

TEST(SaveImage, TellsCompleteFromPartialAndTheCapability) {
    std::string full = save_image();
    auto f = parse_save_image(full, full.size(), "x");
    ASSERT_TRUE(f) << f.error().message();
    EXPECT_TRUE(f->complete);
    EXPECT_FALSE(f->compressed);
    EXPECT_EQ(f->ignore_shared, std::optional<bool>(true));
    auto part = parse_save_image(save_image(false), full.size(), "x");
    ASSERT_TRUE(part);
    EXPECT_FALSE(part->complete);
    auto stock = parse_save_image(save_image(true, false), full.size(), "x");
    ASSERT_TRUE(stock);
    EXPECT_EQ(stock->ignore_shared, std::optional<bool>(false));
    auto gz = parse_save_image(save_image(true, true, 1), full.size(), "x");
    ASSERT_TRUE(gz);
    EXPECT_TRUE(gz->compressed);
    EXPECT_FALSE(gz->ignore_shared.has_value());
}

TEST(SaveImage, RejectsWhatIsNotAnImage) {
    EXPECT_FALSE(parse_save_image("short", 5, "x"));
    std::string other = save_image();
    other.replace(0, 16, "NotLibvirtImage!");
    EXPECT_FALSE(parse_save_image(other, other.size(), "x"));
    // A header that claims gigabytes of XML is not followed.
    std::string huge = save_image();
    huge[20] = huge[21] = huge[22] = huge[23] = '\x7f';
    EXPECT_FALSE(parse_save_image(huge, huge.size(), "x"));
}

TEST(SaveImage, ReadsAFileButNeverThroughALink) {
    vmupdate::testing::TempDir tmp;
    std::string path = tmp / "web1.save";
    write_file(path, save_image(true, true, 0, std::string(100000, 'd')));
    auto f = read_save_image(path);
    ASSERT_TRUE(f) << f.error().message();
    EXPECT_TRUE(f->complete);
    EXPECT_EQ(f->ignore_shared, std::optional<bool>(true));
    EXPECT_EQ(f->size, save_image().size() + 100000);
    ASSERT_EQ(::symlink(path.c_str(), (tmp / "link.save").c_str()), 0);
    EXPECT_FALSE(read_save_image(tmp / "link.save"));
    auto missing = read_save_image(tmp / "none.save");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Errc::not_found);
}

TEST(SaveImage, CheckForRestoreComparesSizeThenChecksum) {
    vmupdate::testing::TempDir tmp;
    Manifest m;
    m.uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
    m.image = tmp / "web1.save";
    m.state = SaveState::saved;
    write_file(m.image, save_image());
    m.image_size = save_image().size();
    m.image_sha256 = std::string(64, '0');
    auto bad = check_image_for_restore(m);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("checksum"), std::string::npos);
    m.image_size += 1;
    bad = check_image_for_restore(m);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("bytes"), std::string::npos) << bad.error().message();
    // An interrupted save: no checksum, the image itself is checked.
    m.image_sha256.clear();
    m.state = SaveState::saving;
    auto ok = check_image_for_restore(m);
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_FALSE(ok->unverified.empty());
    EXPECT_EQ(ok->sha256.size(), 64u);
    write_file(m.image, save_image(true, false));
    EXPECT_FALSE(check_image_for_restore(m));
    write_file(m.image, save_image(false, true));
    EXPECT_FALSE(check_image_for_restore(m));
    // A completed save without a checksum is not one vmupdate recorded.
    write_file(m.image, save_image());
    m.state = SaveState::saved;
    EXPECT_FALSE(check_image_for_restore(m));
}

// libvirt's save directory lies in libvirt-qemu's tree: a FIFO or a link planted
// as the image must not hang the hook or send root's read elsewhere.
TEST(SaveImage, HashesOnlyARegularFileThroughNoLink) {
    vmupdate::testing::TempDir tmp;
    std::string path = tmp / "web1.save";
    write_file(path, save_image(true, true, 0, std::string(200000, 'd')));
    auto sum = image_sha256(path, true);
    ASSERT_TRUE(sum) << sum.error().message();
    EXPECT_EQ(*sum, *sha256_file(path));
    ASSERT_EQ(::symlink(path.c_str(), (tmp / "link.save").c_str()), 0);
    EXPECT_FALSE(image_sha256(tmp / "link.save", false));
    ASSERT_EQ(::mkfifo((tmp / "fifo.save").c_str(), 0600), 0);
    auto fifo = image_sha256(tmp / "fifo.save", false);
    ASSERT_FALSE(fifo);
    EXPECT_EQ(fifo.error().code, Errc::verify);
}
