// libxml2 behind RAII, for the modules that read or write XML. Private header:
// no libxml2 type appears in the public API.
#pragma once

#include "vmupdate/error.hpp"

#include <libxml/tree.h>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate::xml {

struct DocDeleter {
    void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
/// An owned libxml2 document.
using Doc = std::unique_ptr<xmlDoc, DocDeleter>;

/// Parses `text` without network access or entity expansion; a DOCTYPE is refused.
/// `object` names the input in errors.
[[nodiscard]] Result<Doc> parse(std::string_view text, std::string_view object);

/// Serialises without an XML declaration, keeping the document's own whitespace.
[[nodiscard]] std::string serialize(xmlDoc* doc);

/// The element's local name as a string_view (empty for nullptr).
[[nodiscard]] std::string_view name(const xmlNode* n);

/// True for an element named `local` in no namespace.
[[nodiscard]] bool is(const xmlNode* n, std::string_view local);

/// Child elements of `parent` named `local` (no namespace).
[[nodiscard]] std::vector<xmlNode*> children(xmlNode* parent, std::string_view local);

/// The first child element named `local`, or nullptr.
[[nodiscard]] xmlNode* child(xmlNode* parent, std::string_view local);

/// An attribute's value, or an empty string when absent.
[[nodiscard]] std::string attr(const xmlNode* n, std::string_view attr_name);

/// Whether the attribute is present.
[[nodiscard]] bool has_attr(const xmlNode* n, std::string_view attr_name);

/// Sets an attribute (creating it).
void set_attr(xmlNode* n, std::string_view attr_name, std::string_view value);

/// Removes an attribute if present.
void remove_attr(xmlNode* n, std::string_view attr_name);

/// Text content of the element, whitespace-trimmed.
[[nodiscard]] std::string text(const xmlNode* n);

/// Creates a new element `local` as the last element child of `parent`, or right
/// after `after` when given, indented like its siblings.
xmlNode* add_child(xmlNode* parent, std::string_view local, xmlNode* after = nullptr);

/// Unlinks and frees the element together with the indentation before it.
void remove(xmlNode* n);

/// Whether the element is empty of element children.
[[nodiscard]] bool has_element_children(const xmlNode* n);

} // namespace vmupdate::xml
