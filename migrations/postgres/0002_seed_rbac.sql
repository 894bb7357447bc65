-- The permission catalogue and the built-in roles (identical in every team, not editable).

INSERT INTO permissions (slug, description) VALUES
    ('team.members.read',            'See the team''s members and roles'),
    ('team.members.invite',          'Invite people to the team'),
    ('team.members.manage',          'Change members'' roles and remove members'),
    ('team.roles.manage',            'Create custom roles and edit their permissions'),
    ('virtuozzo.credentials.manage', 'Set the team''s Virtuozzo account credentials'),
    ('virtuozzo.session.refresh',    'Sign in to Virtuozzo to refresh the team''s session key'),
    ('audit.read',                   'Read the team''s audit log'),
    ('environments.read',            'See the team''s Virtuozzo environments'),
    ('environments.manage',          'Create, change and delete the team''s Virtuozzo environments');

INSERT INTO roles (name, team_id, builtin, created_at) VALUES ('Owner', NULL, 1, 0);
INSERT INTO roles (name, team_id, builtin, created_at) VALUES ('Admin', NULL, 1, 0);
INSERT INTO roles (name, team_id, builtin, created_at) VALUES ('Member', NULL, 1, 0);
INSERT INTO roles (name, team_id, builtin, created_at) VALUES ('Viewer', NULL, 1, 0);

INSERT INTO role_permissions (role_id, permission_slug)
SELECT r.id, p.slug FROM roles r CROSS JOIN permissions p
WHERE r.team_id IS NULL AND r.name = 'Owner';

INSERT INTO role_permissions (role_id, permission_slug)
SELECT r.id, p.slug FROM roles r CROSS JOIN permissions p
WHERE r.team_id IS NULL AND r.name = 'Admin'
  AND p.slug NOT IN ('virtuozzo.credentials.manage', 'virtuozzo.session.refresh');

INSERT INTO role_permissions (role_id, permission_slug)
SELECT r.id, p.slug FROM roles r CROSS JOIN permissions p
WHERE r.team_id IS NULL AND r.name = 'Member'
  AND p.slug IN ('team.members.read', 'environments.read', 'environments.manage');

INSERT INTO role_permissions (role_id, permission_slug)
SELECT r.id, p.slug FROM roles r CROSS JOIN permissions p
WHERE r.team_id IS NULL AND r.name = 'Viewer'
  AND p.slug LIKE '%.read';
