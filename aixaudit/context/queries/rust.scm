; Repository context for Rust (capture names: see aixaudit/context/outline.py).
; A `use` path is resolved module by module; `mod name;` names a file beside the module.

(use_declaration argument: (_) @import.module)
(mod_item name: (identifier) @import.submodule !body)

(function_item name: (identifier) @definition.name body: (block) @definition.body) @definition
(function_signature_item name: (identifier) @definition.name) @definition
(struct_item name: (type_identifier) @definition.name) @definition
(enum_item name: (type_identifier) @definition.name body: (enum_variant_list) @definition.body) @definition
(trait_item name: (type_identifier) @definition.name body: (declaration_list) @definition.body) @definition
