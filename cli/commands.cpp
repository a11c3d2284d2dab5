// The command table. A new command: a row here, its handler in a cmd_*.cpp
// (handlers.hpp), its section in docs/man/vmupdate.8; the help and the bash
// completion follow from the row, and the unit test cli.table checks the page.
#include "command.hpp"
#include "handlers.hpp"

#include <algorithm>

namespace vmupdate::cli {
namespace {

constexpr Option help_option{"-h, --help", "", "show this help"};

constexpr Option no_options[] = {help_option};

constexpr Option parallel(std::string_view text) {
    return {.names = "--parallel",
            .arg = "N",
            .text = text,
            .kind = Kind::integer,
            .min = 1,
            .max = 64};
}

constexpr Option save_options[] = {
    {"--all", "", "every running domain vmupdate manages"},
    parallel("save N domains at a time (1 to 64, default 4)"),
    help_option,
};

constexpr Option restore_options[] = {
    {"--all", "", "every domain vmupdate has saved"},
    {"-v, --verbose", "", "show where the guest's pause went, phase by phase"},
    parallel("restore N domains at a time (1 to 64, default 4)"),
    help_option,
};

constexpr Option json_options[] = {
    {"--json", "", "print JSON instead of a table"},
    help_option,
};

constexpr Option host_update_options[] = {
    {"--kernel", "K", "the kernel to kexec into", Kind::string, 0, 0, ValueHint::file},
    {"--initrd", "I", "its initramfs", Kind::string, 0, 0, ValueHint::file},
    {"--append", "ARGS", "its command line", Kind::string},
    {"--reuse-cmdline", "", "use the running kernel's command line"},
    {"--packages", "PKG...", "update these packages (names or .deb files) instead", Kind::list},
    {"--allow-removals", "", "with --packages: let apt-get remove other packages"},
    {"--dry-run", "", "check (and load the kernel), pause nothing"},
    {"--yes", "", "do not ask for confirmation"},
    parallel("save N domains at a time (1 to 64, default 4)"),
    help_option,
};

constexpr Option pool_create_options[] = {
    {"--size", "SIZE", "size of the namespace (e.g. 4G, 512M)", Kind::string},
    {"--region", "REGION", "the pmem region (default: the first that fits)", Kind::string},
    {"--mount", "DIR", "mount point (default /var/lib/vmupdate-pool)", Kind::string, 0, 0,
     ValueHint::dir},
    {"--fs", "ext4|xfs", "file system (default ext4)", Kind::string, 0, 0, ValueHint::words,
     "ext4 xfs"},
    {"--configure-libvirt", "", "set memory_backing_dir in qemu.conf"},
    help_option,
};

constexpr Option hook_install_options[] = {
    {"--hook", "PATH", "link this hook executable (default: vmupdate's own)", Kind::string, 0, 0,
     ValueHint::file},
    {"--dry-run", "", "print what would be linked, change nothing"},
    help_option,
};

constexpr Command table[] = {
    {.name = "translate",
     .synopsis = "translate [FILE|-]",
     .summary = "print the preservable version of a domain XML",
     .description = "Reads a libvirt domain XML from FILE (or standard input, also for '-') and\n"
                    "prints the version vmupdate can preserve: RAM in a shared file, <discard/>\n"
                    "removed, vmupdate's metadata added. Changes nothing and needs no libvirt.\n"
                    "A domain that cannot be preserved (hugepages, PCI passthrough, confidential\n"
                    "guests, non-QEMU types) is refused with the reason (exit 2).",
     .options = no_options,
     .operands = Operands::file,
     .run = cmd_translate},
    {.name = "prepare",
     .synopsis = "prepare DOMAIN...",
     .summary = "make domains' persistent definitions preservable",
     .description =
         "Redefines each DOMAIN with its translated XML (see translate) and marks it as\n"
         "managed by vmupdate. A running domain keeps its RAM where it is until its\n"
         "next cold start (shut it down and start it). Warns when libvirt's\n"
         "memory_backing_dir is on a disk file system or the pool is too small.",
     .options = no_options,
     .connects = true,
     .operands = Operands::domains,
     .run = cmd_prepare},
    {.name = "save",
     .synopsis = "save [--parallel N] DOMAIN...|--all",
     .summary = "save device state only, keeping RAM in its file",
     .description = "Saves the device state of each running managed DOMAIN (a libvirt managed\n"
                    "save with QEMU's x-ignore-shared: a few hundred KiB), and keeps its RAM file\n"
                    "alive. The domain stops; 'vmupdate restore' or 'virsh start' brings it back.",
     .options = save_options,
     .connects = true,
     .operands = Operands::domains,
     .run = cmd_save,
     .prefix = "save: "},
    {.name = "restore",
     .synopsis = "restore [--verbose] [--parallel N] DOMAIN...|--all",
     .summary = "restore domains vmupdate saved, from their kept RAM;\n"
                "--verbose shows where the guest's pause went",
     .description = "Restores each DOMAIN vmupdate saved, from its image and its kept RAM; the\n"
                    "guest continues where it paused. An interrupted save is undone or completed.\n"
                    "With --all, every domain that has a vmupdate save.",
     .options = restore_options,
     .connects = true,
     .operands = Operands::saved_domains,
     .run = cmd_restore,
     .prefix = "restore: "},
    {.name = "discard",
     .synopsis = "discard DOMAIN...",
     .summary = "drop a stopped domain's vmupdate save (its kept RAM and\n"
                "its image), so that 'virsh start' boots it afresh",
     .description = "Drops the vmupdate save of each stopped DOMAIN: its kept RAM, its image and\n"
                    "its record. Its next start boots it afresh. There is no --all, on purpose.",
     .options = no_options,
     .connects = true,
     .operands = Operands::saved_domains,
     .run = cmd_discard},
    {.name = "status",
     .synopsis = "status [--json]",
     .summary = "show every domain: managed, RAM, saved, last pause",
     .description = "Shows every domain libvirt knows: running or not, managed by vmupdate,\n"
                    "where its RAM lives, whether a save is recorded, the size of its image and\n"
                    "its last pause. Interrupted saves and failed restores are explained.",
     .options = json_options,
     .connects = true,
     .run = cmd_status,
     .reject = "status takes only --json"},
    {.name = "host-update",
     .synopsis = "host-update --kernel K [--initrd I] [--parallel N]\n"
                 "            (--append ARGS|--reuse-cmdline) [--dry-run] [--yes]\n"
                 "host-update --packages PKG... [--allow-removals] [--parallel N]\n"
                 "            [--dry-run] [--yes]",
     .summary = "save every VM and kexec into kernel K (or update\n"
                "packages) and restore every VM",
     .description =
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
         "and downloads PKG... with nothing paused (refused if anything is missing,\n"
         "if libvirt, QEMU or vmupdate would be removed, or if other packages would\n"
         "be removed without --allow-removals; --dry-run downloads nothing),\n"
         "then every managed VM is saved, the packages installed, libvirtd restarted\n"
         "if libvirt changed, and every VM restored, also after a failed install.\n"
         "Prints each guest's pause and the phases, the install's share included.",
     .options = host_update_options,
     .connects = true,
     .run = cmd_host_update,
     .reject = "host-update: unknown or incomplete argument {}",
     .prefix = "host-update: ",
     .missing = "host-update: unknown or incomplete argument {}"},
    {.name = "pool",
     .description = "The persistent-memory pool that holds guest RAM across a kernel update.",
     .options = no_options,
     .reject = "pool: unknown subcommand '{}'",
     .missing = "pool: needs list or create"},
    {.name = "pool list",
     .synopsis = "pool list [--json]",
     .summary = "pmem regions, namespaces, mounts and DAX state",
     .description = "Lists the pmem regions (libndctl), their namespaces and where those are\n"
                    "mounted, with or without DAX.",
     .options = json_options,
     .run = cmd_pool_list,
     .reject = "pool: list: unknown argument {}"},
    {.name = "pool create",
     .synopsis = "pool create --size SIZE [--region REGION] [--mount DIR]\n"
                 "            [--fs ext4|xfs] [--configure-libvirt]",
     .summary = "make a DAX file system on pmem for guest RAM",
     .description = "Makes a DAX file system for guest RAM: an fsdax namespace of SIZE in a\n"
                    "labelled region, or the whole namespace of a label-less (legacy, memmap=)\n"
                    "region; mounted with -o dax on DIR, with the RAM directory DIR/ram. Prints\n"
                    "the /etc/fstab line that mounts it at boot.",
     .options = pool_create_options,
     .run = cmd_pool_create,
     .reject = "pool: create: unknown argument {}",
     .prefix = "pool: "},
    {.name = "hook",
     .description = "The libvirt qemu hook that keeps RAM alive and restores from it.",
     .options = no_options,
     .reject = "hook needs install or uninstall",
     .missing = "hook needs install or uninstall"},
    {.name = "hook install",
     .synopsis = "hook install [--hook PATH] [--dry-run]",
     .summary = "link the libvirt hook into /etc/libvirt/hooks/qemu.d",
     .description =
         "Links /etc/libvirt/hooks/qemu.d/50-vmupdate to the hook executable: by\n"
         "default the one installed next to this vmupdate (its sbin directory),\n"
         "else the one of its build tree, else the configured one. libvirtd runs only\n"
         "hooks that existed when it started: restart it afterwards. Refused (exit 2)\n"
         "when AppArmor confines libvirtd and its profile would not let it run the\n"
         "hook (only /usr/sbin, /usr/bin and /etc/libvirt/hooks): every start would fail.",
     .options = hook_install_options,
     .run = cmd_hook_install,
     .reject = "hook install: unknown or incomplete argument {}",
     .missing = "hook install: unknown or incomplete argument {}"},
    {.name = "hook uninstall",
     .synopsis = "hook uninstall",
     .summary = "remove the libvirt hook link",
     .description = "Removes /etc/libvirt/hooks/qemu.d/50-vmupdate (fine if it is not there).\n"
                    "Restart libvirtd for it to stop running the hook.",
     .options = no_options,
     .run = cmd_hook_uninstall,
     .reject = "hook uninstall takes no arguments"},
    {.name = "help",
     .synopsis = "help [COMMAND]",
     .summary = "show the help of COMMAND (also: COMMAND --help)",
     .description = "Shows the usage, options and description of COMMAND, or the overview.",
     .options = no_options,
     .operands = Operands::commands,
     .run = cmd_help},
    // Started by host-update on systemd hosts (DESIGN.md, "Kernel update
    // without pmem"); takes canonical UUIDs after "--".
    {.name = "handover-hold",
     .options = no_options,
     .operands = Operands::uuids,
     .run = cmd_handover_hold,
     .hidden = true},
    // Started when a write-back of handed-over RAM fails (DESIGN.md, "Kernel
    // update without pmem"): `ram-hold -- RUN_DIR PID TOKEN:FD...`.
    {.name = "ram-hold",
     .options = {},
     .operands = Operands::raw,
     .run = cmd_ram_hold,
     .hidden = true},
    // What packaging/bash-completion/vmupdate offers, from this table.
    {.name = "__complete",
     .options = {},
     .operands = Operands::raw,
     .run = cmd_complete,
     .hidden = true},
};

} // namespace

std::span<const Command> commands() {
    return table;
}

const Command* find_command(std::string_view name, bool hidden) {
    auto it = std::ranges::find(table, name, &Command::name);
    return it == std::end(table) || (it->hidden && !hidden) ? nullptr : &*it;
}

bool is_group(const Command& command) {
    return !command.hidden && command.synopsis.empty();
}

std::vector<const Command*> subcommands(const Command& group) {
    std::vector<const Command*> out;
    for (const auto& c : table)
        if (c.name.size() > group.name.size() && c.name.starts_with(group.name) &&
            c.name[group.name.size()] == ' ')
            out.push_back(&c);
    return out;
}

ParseRules parse_rules(const Command& command) {
    ParseRules rules{std::string(command.reject), std::string(command.prefix),
                     std::string(command.missing), command.operands != Operands::none};
    if (rules.reject.empty())
        rules.reject = std::string(command.name) + ": unknown option {}";
    return rules;
}

} // namespace vmupdate::cli
