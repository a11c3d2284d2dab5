#include "help.hpp"

#include <algorithm>

namespace vmupdate::cli {
namespace {

constexpr OptionHelp help_option{"-h, --help", "", "show this help"};

constexpr OptionHelp no_options[] = {help_option};

constexpr OptionHelp save_options[] = {
    {"--all", "", "every running domain vmupdate manages"},
    {"--parallel", "N", "save N domains at a time (1 to 64, default 4)"},
    help_option,
};

constexpr OptionHelp restore_options[] = {
    {"--all", "", "every domain vmupdate has saved"},
    {"-v, --verbose", "", "show where the guest's pause went, phase by phase"},
    {"--parallel", "N", "restore N domains at a time (1 to 64, default 4)"},
    help_option,
};

constexpr OptionHelp json_options[] = {
    {"--json", "", "print JSON instead of a table"},
    help_option,
};

constexpr OptionHelp host_update_options[] = {
    {"--kernel", "K", "the kernel to kexec into"},
    {"--initrd", "I", "its initramfs"},
    {"--append", "ARGS", "its command line"},
    {"--reuse-cmdline", "", "use the running kernel's command line"},
    {"--packages", "PKG...", "update these packages (names or .deb files) instead"},
    {"--dry-run", "", "check (and load the kernel), pause nothing"},
    {"--yes", "", "do not ask for confirmation"},
    {"--parallel", "N", "save N domains at a time (1 to 64, default 4)"},
    help_option,
};

constexpr OptionHelp pool_create_options[] = {
    {"--size", "SIZE", "size of the namespace (e.g. 4G, 512M)"},
    {"--region", "REGION", "the pmem region (default: the first that fits)"},
    {"--mount", "DIR", "mount point (default /var/lib/vmupdate-pool)"},
    {"--fs", "ext4|xfs", "file system (default ext4)"},
    {"--configure-libvirt", "", "set memory_backing_dir in qemu.conf"},
    help_option,
};

constexpr OptionHelp hook_install_options[] = {
    {"--hook", "PATH", "link this hook executable (default: vmupdate's own)"},
    {"--dry-run", "", "print what would be linked, change nothing"},
    help_option,
};

constexpr CommandHelp table[] = {
    {"translate", "translate [FILE|-]", "print the preservable version of a domain XML",
     "Reads a libvirt domain XML from FILE (or standard input, also for '-') and\n"
     "prints the version vmupdate can preserve: RAM in a shared file, <discard/>\n"
     "removed, vmupdate's metadata added. Changes nothing and needs no libvirt.\n"
     "A domain that cannot be preserved (hugepages, PCI passthrough, confidential\n"
     "guests, non-QEMU types) is refused with the reason (exit 2).",
     no_options},
    {"prepare", "prepare DOMAIN...", "make domains' persistent definitions preservable",
     "Redefines each DOMAIN with its translated XML (see translate) and marks it as\n"
     "managed by vmupdate. A running domain keeps its RAM where it is until its\n"
     "next cold start (shut it down and start it). Warns when libvirt's\n"
     "memory_backing_dir is on a disk file system or the pool is too small.",
     no_options, true},
    {"save", "save [--parallel N] DOMAIN...|--all",
     "save device state only, keeping RAM in its file",
     "Saves the device state of each running managed DOMAIN (a libvirt managed\n"
     "save with QEMU's x-ignore-shared: a few hundred KiB), and keeps its RAM file\n"
     "alive. The domain stops; 'vmupdate restore' or 'virsh start' brings it back.",
     save_options, true},
    {"restore", "restore [--verbose] [--parallel N] DOMAIN...|--all",
     "restore domains vmupdate saved, from their kept RAM;\n"
     "--verbose shows where the guest's pause went",
     "Restores each DOMAIN vmupdate saved, from its image and its kept RAM; the\n"
     "guest continues where it paused. An interrupted save is undone or completed.\n"
     "With --all, every domain that has a vmupdate save.",
     restore_options, true},
    {"discard", "discard DOMAIN...",
     "drop a stopped domain's vmupdate save (its kept RAM and\n"
     "its image), so that 'virsh start' boots it afresh",
     "Drops the vmupdate save of each stopped DOMAIN: its kept RAM, its image and\n"
     "its record. Its next start boots it afresh. There is no --all, on purpose.",
     no_options, true},
    {"status", "status [--json]", "show every domain: managed, RAM, saved, last pause",
     "Shows every domain libvirt knows: running or not, managed by vmupdate,\n"
     "where its RAM lives, whether a save is recorded, the size of its image and\n"
     "its last pause. Interrupted saves and failed restores are explained.",
     json_options, true},
    {"host-update",
     "host-update --kernel K [--initrd I] [--parallel N]\n"
     "            (--append ARGS|--reuse-cmdline) [--dry-run] [--yes]\n"
     "host-update --packages PKG... [--parallel N] [--dry-run] [--yes]",
     "save every VM and kexec into kernel K (or update\n"
     "packages) and restore every VM",
     "Checks that every running VM can be preserved across a kernel update (RAM\n"
     "on persistent memory, a DAX mount), loads kernel K, saves every VM, syncs\n"
     "and kexecs (under systemd: systemctl kexec, a clean shutdown; else kexec -e).\n"
     "RAM on tmpfs is handed to kernel K by Kexec HandOver + LUO when both kernels\n"
     "have them (kho=on liveupdate=on, one kernel series).\n"
     "vmupdate-restore.service (vmupdate restore --all) restores the VMs at boot.\n"
     "If any VM cannot be preserved, nothing is paused (exit 2). Asks for\n"
     "confirmation unless --yes; --dry-run stops after the checks.\n"
     "\n"
     "With --packages, updates QEMU/libvirt packages instead: apt-get simulates\n"
     "and downloads PKG... with nothing paused (refused if anything is missing),\n"
     "then every managed VM is saved, the packages installed, libvirtd restarted\n"
     "if libvirt changed, and every VM restored, also after a failed install.\n"
     "Prints each guest's pause and the phases, the install's share included.",
     host_update_options, true},
    {"pool", "", "", "The persistent-memory pool that holds guest RAM across a kernel update.",
     no_options},
    {"pool list", "pool list [--json]", "pmem regions, namespaces, mounts and DAX state",
     "Lists the pmem regions (libndctl), their namespaces and where those are\n"
     "mounted, with or without DAX.",
     json_options},
    {"pool create",
     "pool create --size SIZE [--region REGION] [--mount DIR]\n"
     "            [--fs ext4|xfs] [--configure-libvirt]",
     "make a DAX file system on pmem for guest RAM",
     "Makes a DAX file system for guest RAM: an fsdax namespace of SIZE in a\n"
     "labelled region, or the whole namespace of a label-less (legacy, memmap=)\n"
     "region; mounted with -o dax on DIR, with the RAM directory DIR/ram. Prints\n"
     "the /etc/fstab line that mounts it at boot.",
     pool_create_options},
    {"hook", "", "", "The libvirt qemu hook that keeps RAM alive and restores from it.",
     no_options},
    {"hook install", "hook install [--hook PATH] [--dry-run]",
     "link the libvirt hook into /etc/libvirt/hooks/qemu.d",
     "Links /etc/libvirt/hooks/qemu.d/50-vmupdate to the hook executable: by\n"
     "default the one installed next to this vmupdate (its sbin directory),\n"
     "else the one of its build tree, else the configured one. libvirtd runs only\n"
     "hooks that existed when it started: restart it afterwards. Refused (exit 2)\n"
     "when AppArmor confines libvirtd and its profile would not let it run the\n"
     "hook (only /usr/sbin, /usr/bin and /etc/libvirt/hooks): every start would fail.",
     hook_install_options},
    {"hook uninstall", "hook uninstall", "remove the libvirt hook link",
     "Removes /etc/libvirt/hooks/qemu.d/50-vmupdate (fine if it is not there).\n"
     "Restart libvirtd for it to stop running the hook.",
     no_options},
    {"help", "help [COMMAND]", "show the help of COMMAND (also: COMMAND --help)",
     "Shows the usage, options and description of COMMAND, or the overview.", no_options},
};

bool is_group(const CommandHelp& c) {
    return c.synopsis.empty();
}

// The subcommands of a group, e.g. "pool list" and "pool create" of "pool".
std::vector<const CommandHelp*> children(const CommandHelp& group) {
    std::vector<const CommandHelp*> out;
    for (const auto& c : table)
        if (c.name.size() > group.name.size() && c.name.starts_with(group.name) &&
            c.name[group.name.size()] == ' ')
            out.push_back(&c);
    return out;
}

std::vector<std::string_view> lines(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        auto nl = text.find('\n');
        out.push_back(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    }
    return out;
}

// "  NAME ARG" and its text, the text in column 25 (on the next line if NAME
// ARG is too wide), continuation lines aligned with it.
void append_entry(std::string& out, std::string_view head, std::string_view text) {
    constexpr size_t column = 25;
    out += "  ";
    out += head;
    bool first = true;
    for (auto line : lines(text)) {
        size_t at = first && 2 + head.size() < column - 1 ? 2 + head.size() : 0;
        if (at == 0)
            out += '\n';
        out.append(column - at, ' ');
        out += line;
        first = false;
    }
    out += '\n';
}

void append_synopsis(std::string& out, const CommandHelp& c, bool& first) {
    for (auto line : lines(c.synopsis)) {
        if (line.starts_with(' '))
            out += std::string(16, ' ');
        else
            out += first ? "usage: vmupdate " : "       vmupdate ";
        out += line;
        out += '\n';
        first = false;
    }
}

std::vector<std::string_view> option_names(const OptionHelp& o) {
    std::vector<std::string_view> out;
    std::string_view names = o.names;
    for (;;) {
        auto comma = names.find(", ");
        out.push_back(names.substr(0, comma));
        if (comma == std::string_view::npos)
            return out;
        names.remove_prefix(comma + 2);
    }
}

bool takes_value(const CommandHelp& c, std::string_view arg) {
    for (const auto& o : c.options) {
        if (o.arg.empty())
            continue;
        auto names = option_names(o);
        if (std::ranges::find(names, arg) != names.end())
            return true;
    }
    return false;
}

} // namespace

std::span<const CommandHelp> commands() {
    return table;
}

const CommandHelp* find_command(std::string_view name) {
    auto it = std::ranges::find(table, name, &CommandHelp::name);
    return it == std::end(table) ? nullptr : &*it;
}

std::string overview() {
    std::string out = "usage: vmupdate [-c URI] COMMAND [ARGS...]\n"
                      "       vmupdate COMMAND --help\n\n"
                      "Keeps libvirt/QEMU virtual machines running across a host update by "
                      "keeping\ntheir RAM in a file and saving only their device state.\n\n"
                      "Commands:\n";
    for (const auto& c : table) {
        if (is_group(c))
            continue;
        auto synopsis = lines(c.synopsis);
        for (size_t i = 0; i + 1 < synopsis.size(); ++i)
            out += "  " + std::string(synopsis[i]) + '\n';
        append_entry(out, synopsis.back(), c.summary);
    }
    out += "\nSeveral domains are handled --parallel N at a time (default 4). Domain names\n"
           "that start with '-' go after \"--\" (vmupdate save -- -web1).\n\n"
           "Options:\n";
    append_entry(out, "-c, --connect URI",
                 "libvirt connection URI (default: libvirt's default,\n"
                 "qemu:///system for root)");
    append_entry(out, "-h, --help", "show this help; COMMAND --help shows COMMAND's");
    append_entry(out, "-V, --version", "show the version");
    out += "\nExit status: 0 done, 1 failed, 2 refused or invalid input (nothing changed).\n"
           "See also: man vmupdate.\n";
    return out;
}

std::string command_help(const CommandHelp& c) {
    std::string out;
    bool first = true;
    auto subcommands = is_group(c) ? children(c) : std::vector<const CommandHelp*>{&c};
    for (const auto* s : subcommands)
        append_synopsis(out, *s, first);
    out += "       vmupdate " + std::string(c.name) + " --help\n\n";
    out += c.description;
    out += '\n';
    if (is_group(c)) {
        out += "\nCommands:\n";
        for (const auto* s : subcommands)
            append_entry(out, s->name.substr(c.name.size() + 1), s->summary);
        out += "\n'vmupdate " + std::string(c.name) + " COMMAND --help' shows COMMAND's options.\n";
        return out;
    }
    out += "\nOptions:\n";
    for (const auto& o : c.options)
        append_entry(out, std::string(o.names) + (o.arg.empty() ? "" : " " + std::string(o.arg)),
                     o.text);
    out += '\n';
    if (c.synopsis.find("DOMAIN") != std::string_view::npos) {
        out += "Domain names that start with '-' go after \"--\": vmupdate " + std::string(c.name) +
               " -- -web1\n";
    }
    if (c.connects)
        out += "Global option, before the command: -c, --connect URI (libvirt connection).\n";
    out += "Exit status: 0 done, 1 failed, 2 refused or invalid input (nothing changed).\n";
    return out;
}

const CommandHelp* help_request(std::string_view command, const std::vector<std::string>& args) {
    const CommandHelp* c = find_command(command);
    if (!c)
        return nullptr;
    size_t i = 0;
    if (is_group(*c) && !args.empty())
        if (const auto* sub = find_command(std::string(command) + " " + args[0])) {
            c = sub;
            i = 1;
        }
    for (; i < args.size() && args[i] != "--"; ++i) {
        if (args[i] == "-h" || args[i] == "--help")
            return c;
        if (takes_value(*c, args[i]))
            ++i;
    }
    return nullptr;
}

} // namespace vmupdate::cli
