; Span query for JavaScript, also loaded for TypeScript and TSX, whose grammars name these
; nodes alike (capture names are fixed: see aixaudit/spans.py).
; Bodies are the whole `{...}` node; conditions are the expression inside the parentheses.

(function_declaration body: (statement_block) @span.function_body)
(function_expression body: (statement_block) @span.function_body)
(generator_function_declaration body: (statement_block) @span.function_body)
(generator_function body: (statement_block) @span.function_body)
(arrow_function body: (statement_block) @span.function_body)
(method_definition body: (statement_block) @span.function_body)

(if_statement consequence: (statement_block) @span.block_body)
(else_clause (statement_block) @span.block_body)
(for_statement body: (statement_block) @span.block_body)
(for_in_statement body: (statement_block) @span.block_body)
(while_statement body: (statement_block) @span.block_body)
(do_statement body: (statement_block) @span.block_body)
(try_statement body: (statement_block) @span.block_body)
(catch_clause body: (statement_block) @span.block_body)
(finally_clause body: (statement_block) @span.block_body)

(statement_block) @span.block

(if_statement condition: (parenthesized_expression (_) @span.condition))
(while_statement condition: (parenthesized_expression (_) @span.condition))
(do_statement condition: (parenthesized_expression (_) @span.condition))
(for_statement condition: (_) @span.condition)
(ternary_expression condition: (_) @span.condition)

(call_expression arguments: (arguments) @span.arguments) @span.call
(new_expression arguments: (arguments) @span.arguments) @span.call

[
  (expression_statement)
  (lexical_declaration)
  (variable_declaration)
  (return_statement)
  (throw_statement)
  (break_statement)
  (continue_statement)
  (if_statement)
  (for_statement)
  (for_in_statement)
  (while_statement)
  (do_statement)
  (try_statement)
  (switch_statement)
] @span.statement
