; Repository context for Java (capture names: see aixaudit/context/outline.py).

(import_declaration (scoped_identifier) @import.module)
(import_declaration (scoped_identifier) @import.module (asterisk) @import.wildcard)

(class_declaration name: (identifier) @definition.name body: (class_body) @definition.body) @definition
(interface_declaration name: (identifier) @definition.name body: (interface_body) @definition.body) @definition
(enum_declaration name: (identifier) @definition.name body: (enum_body) @definition.body) @definition
(record_declaration name: (identifier) @definition.name body: (class_body) @definition.body) @definition
(method_declaration name: (identifier) @definition.name body: (block) @definition.body) @definition
(method_declaration name: (identifier) @definition.name !body) @definition
(constructor_declaration name: (identifier) @definition.name body: (constructor_body) @definition.body) @definition
